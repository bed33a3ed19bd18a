export * from "@intake/testkit";
