import { beforeAll, beforeEach } from "vitest";

/**
 * beforeAll whose failure fails every test of the suite with its error. A plain beforeAll
 * that throws (RGW_ENDPOINT unset, a service down) makes vitest report the suite's tests
 * as skipped, which a summary line counts beside the passes; here each test fails and says
 * why.
 */
export function beforeAllOrFailEach(setUp: () => Promise<unknown> | unknown, timeoutMs?: number): void {
  let failure: unknown;
  beforeAll(async () => {
    try {
      await setUp();
    } catch (err) {
      failure = err;
    }
  }, timeoutMs);
  beforeEach(() => {
    if (failure !== undefined) throw failure;
  });
}
