// The one error body every API route answers with (DESIGN.md contracts).
import { z } from "zod"

export const ApiErrorBody = z.object({ error: z.string(), code: z.string(), detail: z.unknown().optional() })
export type ApiErrorBody = z.infer<typeof ApiErrorBody>
