/* core/policy/lapi_tx.h: the methods of hooks' `tx` table (lapi_tx.c). */
#ifndef SLUICE_LAPI_TX_H
#define SLUICE_LAPI_TX_H

#include <lua.h>

/* Give the table at the stack top the tx methods (header, headers, add_header,
 * remove_header, body) through a metatable shared by every tx table of L. They work on
 * the session of the hook running when called, in on_data (all) and on_relayed (reading
 * only), and raise elsewhere. */
void lapi_tx_methods(lua_State *L);

#endif
