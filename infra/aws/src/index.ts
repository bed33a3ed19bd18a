export { IntakeStack, APP_CONTEXT, type IntakeStackProps, type ImageSource, type DataStore } from "./stack.ts";
export { WORKER_ROLES, API_ACCESS, ADMIN_ACCESS, type WorkerRole, type ProcessAccess } from "./roles.ts";
export { METRIC_NAMESPACE, QUEUE_JOBS_METRIC } from "./queue-metrics.ts";
