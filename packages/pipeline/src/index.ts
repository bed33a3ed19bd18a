export * from "./stage-queues.ts";
