export * from "./object-store.ts";
export * from "./capabilities.ts";
export * from "./errors.ts";
export * from "./s3-object-store.ts";
export * from "./post-presigner.ts";
export * from "./provision.ts";
export * from "./event-queue.ts";
