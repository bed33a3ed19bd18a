export * from "./connection.ts";
export * from "./upload-repository.ts";
export * from "./audit-log.ts";
export * from "./api-keys.ts";
export * from "./tenant-usage.ts";
export * from "./admin-users.ts";
