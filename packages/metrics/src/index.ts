export * from "./definitions.ts";
export * from "./sources.ts";
export { COLLECT_TIMEOUT_MS, readClamd, readQueues, signatureDate } from "./collectors.ts";
export * from "./pipeline-observer.ts";
export * from "./registry.ts";
export * from "./bearer.ts";
