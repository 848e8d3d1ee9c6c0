-- lua/sluice/testing_ctl.lua: the double's sluice.ctl, the key walk and delete that the
-- control plane's state offers (core/daemon/control_lua.c) to the modules `sluice ctl`
-- calls (ratelimit.ctl_show, ctl_reset, ctl_list; denylist.deny, allow), over the harness's
-- zones, so that a spec can call those functions as the control socket does.
local testing_ctl = {}

local SHOW_VALUE = 256 -- octets of a string value shown (value_cut beyond)
local MAX_ENTRIES = 10000

-- h: the harness (h.zones, h.stores, h.clock); order: the zones' names in the
-- configuration's order.
function testing_ctl.new(h, order)
  local ctl = {}

  local function store_of(zone)
    local store = h.stores[zone]
    if not store then error('sluice.ctl: no such zone \'' .. tostring(zone) .. '\'', 3) end
    return store
  end

  function ctl.zones()
    local out = {}
    for i, name in ipairs(order) do out[i] = name end
    return out
  end

  function ctl.keys(zone, prefix, now, max, opts)
    local store = store_of(zone)
    assert(type(max) == 'number' and max >= 0 and max <= MAX_ENTRIES, 'sluice.ctl.keys: max')
    opts = opts or {}
    local out = {}
    for key, e in pairs(store) do
      local live = not e.expires or e.expires > now
      local wanted = key:sub(1, #prefix) == prefix
        and (not opts.numbers_only or type(e.value) == 'number')
        and (not opts.suffix or key:sub(-#opts.suffix) == opts.suffix)
      if live and wanted then
        if #out == max then return out, true end
        local entry = { key = key, expires = e.expires or 0 }
        if not opts.keys_only then
          entry.value = e.value
          if type(e.value) == 'string' and #e.value > SHOW_VALUE then
            entry.value, entry.value_cut = e.value:sub(1, SHOW_VALUE), true
          end
        end
        out[#out + 1] = entry
      end
    end
    return out, false
  end

  function ctl.delete(zone, key, now)
    local store = store_of(zone)
    local e = store[key]
    if not e or (e.expires and e.expires <= now) then return false end
    return h.zones[zone]:delete(key)
  end

  return ctl
end

return testing_ctl
