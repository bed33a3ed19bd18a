export * from "./address-guard.ts";
export * from "./signing.ts";
export * from "./send.ts";
export * from "./delivery.ts";
export * from "./queue.ts";
