/**
 * What the local S3 stand-in guarantees is declared where the product reads it
 * (@intake/storage, STORE_KINDS["intake-local"], chosen with STORAGE_KIND=intake-local);
 * test/conformance checks that declaration against this stand-in's behaviour.
 */
export { LOCAL_STAND_IN_CAPABILITIES as LOCAL_STORAGE_CAPABILITIES } from "@intake/storage";
