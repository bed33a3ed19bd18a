export {
  startLocalObjectStorage,
  FAUXQS_MAX_BODY_BYTES,
  type LocalObjectStorage,
  type LocalObjectStorageOptions,
  type LocalObjectStorageLogger,
} from "./local-object-storage.ts";
export {
  buildObjectCreatedRecord,
  createSequencer,
  encodeS3EventKey,
  type ObjectCreatedEventName,
  type S3EventMessage,
  type S3EventRecord,
  type S3TestEventMessage,
} from "./s3-event.ts";
export { LOCAL_STORAGE_CAPABILITIES } from "./capabilities.ts";
export type { StorageCorsOrigins } from "./storage-cors.ts";
