# bench/policy_sets.sh: the policy sets of bench/policy_cost.sh and bench/policy_instr.sh
# (sourced by both). policy_set SET ROOT prints the POLICIES list of SET from ROOT's
# policies/:
#   none          auth.lua only: AUTH needs a policy, and auth.lua has no hook but on_auth,
#                 which runs once per connection (the relay without per-message policy work)
#   shipped       auth.lua and sender_domain.lua (what bench/run.sh runs)
#   noop4         auth.lua and bench/conf/noop.lua four times (four no-op hooks per event)
#   limits        ratelimit.lua, auth.lua, sender_domain.lua (the limits out of reach:
#                 DOMAIN_CONF); limits-redis: the same, the caller puts the zones in Redis
#   all4          the four shipped policies as conf/sluice.lua lists them: ratelimit.lua,
#                 auth.lua, sender_domain.lua, audit.lua (audit_log: the caller's EXTRA_CONF)
policy_set() {
    local r=$2 n=$ROOT/bench/conf/noop.lua
    case $1 in
        none) echo "$r/policies/auth.lua" ;;
        shipped) echo "$r/policies/auth.lua $r/policies/sender_domain.lua" ;;
        noop4) echo "$r/policies/auth.lua $n $n $n $n" ;;
        limits | limits-redis)
            echo "$r/policies/ratelimit.lua $r/policies/auth.lua $r/policies/sender_domain.lua" ;;
        all4) echo "$r/policies/ratelimit.lua $r/policies/auth.lua $r/policies/sender_domain.lua $r/policies/audit.lua" ;;
        *) log "unknown policy set $1 (none, shipped, noop4, limits, limits-redis, all4)"
           exit 2 ;;
    esac
}

# The limits of policies/ratelimit.lua out of reach, for the sets that count messages.
DOMAIN_CONF=${DOMAIN_CONF:-"limits = { messages_per_hour = 1000000000, user_messages_per_hour = 1000000000 }"}
