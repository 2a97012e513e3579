// The one risk rule every door that runs a shell command on nodes applies, for humans and AI alike:
// the command registry assesses the line, and the caller's role needs `commands:run` for low and
// medium risk, `commands:run-high` for high. The SSH command API and the agent relay both call it.
import { can, leastRoleFor, type Role } from "./auth/roles.ts"
import { assessCommand } from "./command-assessment.ts"
import type { RiskLevel } from "./command-entry.ts"
import { forbidden } from "./errors.ts"

/** The command's risk level, or a PERMISSION_DENIED error that says what the caller would need. */
export function checkCommandRisk(role: Role, command: string): RiskLevel {
  const a = assessCommand(command)
  const needed = a.risk === "high" ? "commands:run-high" : "commands:run"
  if (!can(role, needed))
    throw forbidden(
      `this command is ${a.risk} risk (${a.reasons.join("; ")}); it needs the ${needed} permission (role ${leastRoleFor(needed)}), and you are ${role}`,
    )
  return a.risk
}
