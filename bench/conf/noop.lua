-- bench/conf/noop.lua: a policy with no opinion on anything, for measuring what the engine
-- itself costs per hook call (bench/policy_cost.sh lists it four times: a chain of four
-- no-op hooks on MAIL FROM, RCPT TO and the end of data).
local function none()
  return nil
end

return { on_mail_from = none, on_rcpt = none, on_data = none }
