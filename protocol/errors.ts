// The one error body every API route answers with, whatever the status: { error, code, detail? }.
// Clients (the CLI among them) rely on this shape, so it changes only together with them.
import { z } from "zod"

export const ApiErrorBody = z.object({ error: z.string(), code: z.string(), detail: z.unknown().optional() })
export type ApiErrorBody = z.infer<typeof ApiErrorBody>
