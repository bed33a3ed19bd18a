export * from "./ports.ts";
export * from "./wait.ts";
export * from "./sigv4.ts";
export * from "./fake-clamd.ts";
export * from "./clamd-signatures.ts";
export * from "./zip-tool.ts";
export * from "./redis-target.ts";
