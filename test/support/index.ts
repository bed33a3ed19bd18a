export * from "./database.ts";
export * from "./storage.ts";
