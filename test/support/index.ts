export * from "./database.ts";
export * from "./storage.ts";
export * from "./ports.ts";
export * from "./suite.ts";
export * from "./clamd.ts";
export * from "./http-tap.ts";
