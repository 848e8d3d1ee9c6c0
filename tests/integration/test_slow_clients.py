"""Connections are capped per client network (docs/security.md), which policies see as
session.client."""
import pytest

from conftest import SHIPPED_POLICIES, upstream_conf

CLIENT_POLICY = """
local sluice = require('sluice')
return {
  on_connect = function(session)
    sluice.log('info', 'client.seen', { client = session.client, ip = session.client_address })
  end,
}
"""


@pytest.mark.parametrize('address, client', [('127.0.0.1', '127.0.0.1'), ('::1', '::/64')])
def test_a_second_connection_from_one_client_network_gets_421_and_policies_see_its_name(
        make_relay, sink, tmp_path, address, client):
    show = tmp_path / 'show_client.lua'
    show.write_text(CLIENT_POLICY)
    relay = make_relay(upstream_conf(sink.port), address=address,
                       limits='max_connections_per_ip = 1',
                       policies=[str(show)] + SHIPPED_POLICIES)
    with relay.raw(tls=False) as first:
        with relay.raw(tls=False) as second:
            assert second.greeting == (421, b'4.7.0 Too many connections, try again later')
            assert second.at_eof()
        assert first.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    [refused] = relay.wait_logs('session.refuse')
    assert (refused['ip'], refused['client'], refused['reason']) == (
        address, client, 'max_connections_per_ip')
    [seen] = relay.wait_logs('client.seen')
    assert (seen['client'], seen['ip']) == (client, address)
    relay.wait_logs('session.close', 2)
    with relay.raw(tls=False) as again:  # the slot was given back
        assert again.greeting.code == 220
