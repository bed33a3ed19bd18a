export * from "./database.ts";
export * from "./storage.ts";
export * from "./ports.ts";
export * from "./wait.ts";
export * from "./fake-clamd.ts";
export * from "./sigv4.ts";
export * from "./suite.ts";
