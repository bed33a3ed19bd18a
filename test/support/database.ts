export * from "@intake/db/testing";
