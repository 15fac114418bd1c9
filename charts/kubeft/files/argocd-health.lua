-- Argo CD health check for kubeft.io/FineTuneJob.
-- Goes into argocd-cm under resource.customizations.health.kubeft.io_FineTuneJob (docs/argocd.md).
-- Argo CD runs it with the live object as `obj` and reads the returned table's status and message.
-- Scripts from argocd-cm get only Lua's base, table and package libraries (no string or math),
-- so this one formats with `..` and tostring alone.
--
-- Health follows status.phase, the one phase the operator computes:
--   Pending, Queued, Running -> Progressing   Succeeded -> Healthy
--   Failed -> Degraded                        Suspended -> Suspended
-- The message is the message of the condition named after the phase (for Failed: "Reason:
-- message"). It changes only when the operator's conditions do, never with the trainer's
-- progress: Argo CD stores every new message in the Application's status, so a message with the
-- step, loss or ETA in it would rewrite the Application at every progress report. The step
-- counts stay in status.progress (kubectl get ftj shows them).

local HEALTH = {
  Pending = "Progressing",
  Queued = "Progressing",
  Running = "Progressing",
  Succeeded = "Healthy",
  Failed = "Degraded",
  Suspended = "Suspended",
}

local function nonempty(s)
  return s ~= nil and s ~= ""
end

local function true_condition(status, type_name)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_name and c.status == "True" then
      return c
    end
  end
  return nil
end

local function condition_message(c, with_reason)
  if c == nil then
    return nil
  end
  if nonempty(c.message) then
    if with_reason and nonempty(c.reason) then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  if nonempty(c.reason) then
    return c.reason
  end
  return nil
end

local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

local status = obj.status
local phase = status.phase
hs.status = HEALTH[phase]
if hs.status == nil then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
  return hs
end

local message = condition_message(true_condition(status, phase), phase == "Failed")
if message == nil and phase == "Succeeded" and status.artifact ~= nil and nonempty(status.artifact.uri) then
  message = "Adapter exported to " .. status.artifact.uri
end
hs.message = message or phase
return hs
