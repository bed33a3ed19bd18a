import type { AdminModule } from "../module.ts";

/** Placeholder until this area is built: mounts nothing. */
export const mountOperators: AdminModule = () => {};
