// Which models a chat may run on: `[ai] model` and those `[ai] models` adds, nothing else. Any user
// with fleet:read makes chats, but the provider's key and its bill are the admin's, and a proxy behind
// `base_url` routes whatever name it is given (a costlier model, another provider). So a chat names a
// model only from this list, checked where it is made or switched (422 naming the list); and a chat
// stored with a model the list no longer holds (the config changed since) runs on `[ai] model`.
import { invalid } from "../domain/errors.ts"

export interface ModelChoice {
  /** The default: `[ai] model`. */
  model: string
  /** `[ai] models`. */
  models: string[]
}

export function allowedModels(s: ModelChoice): string[] {
  return [...new Set([s.model, ...s.models])]
}

/** The model asked for, when the config allows it; otherwise VALIDATION_FAILED naming what it allows. */
export function chosenModel(s: ModelChoice, asked: string): string {
  const allowed = allowedModels(s)
  if (allowed.includes(asked)) return asked
  throw invalid(
    `model ${JSON.stringify(asked)} is not allowed on this control plane; a chat may use ${allowed.join(", ")} (set by the admin in [ai] model and models)`,
    { allowed },
  )
}

/** The model a stored chat runs on now: its own while the config allows it, else the default. */
export function modelInForce(s: ModelChoice, stored: string): string {
  return allowedModels(s).includes(stored) ? stored : s.model
}
