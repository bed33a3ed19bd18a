import { PutObjectCommand } from "@aws-sdk/client-s3";
import { startFauxqsStorage, startRgwStorage, storeIgnoringIfMatch, type TestStorage } from "@intake/test";
import { objectStoreContract, type StoreUnderTest } from "./object-store-contract.ts";

/**
 * The ObjectStore contract on every storage the product runs on: fauxqs behind
 * infra/local's proxy, exactly as the dev stack uses it, and Ceph RGW (infra/rgw, started
 * by infra/bin/test). Each declares its capabilities (test/support/storage.ts passes the
 * stand-in's and RGW's declarations to the store, as a deployment would).
 */
function underTest(start: () => Promise<TestStorage>): () => Promise<StoreUnderTest> {
  return async () => {
    const s = await start();
    return {
      store: s.store,
      put: async (key, body, contentType = "application/octet-stream") => {
        await s.s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: key, Body: body, ContentType: contentType }));
      },
      ignoringIfMatch: () => storeIgnoringIfMatch(s),
      stop: () => s.stop(),
    };
  };
}

objectStoreContract("fauxqs behind infra/local's proxy", underTest(() => startFauxqsStorage()));
objectStoreContract("Ceph RGW", underTest(startRgwStorage));
