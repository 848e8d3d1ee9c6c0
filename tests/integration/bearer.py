"""What the OAuth2 tests (test_oauth2, test_oauth2_http, test_idp) share: the SASL
payloads of XOAUTH2 and OAUTHBEARER, the replies and RFC 7628 error challenges sluice
gives, and a RawClient ready for AUTH on either listener."""
import base64

from conftest import b64

OK = (235, b'2.7.0 Authentication successful')
INVALID = (535, b'5.7.8 Authentication credentials invalid')
CHALLENGE = {
    'XOAUTH2': {'status': '400', 'schemes': 'Bearer', 'scope': 'smtp.send'},
    'OAUTHBEARER': {'status': 'invalid_token', 'schemes': 'bearer', 'scope': 'smtp.send'},
}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def xoauth2(user, token):
    return b64('user=%s\x01auth=Bearer %s\x01\x01' % (user, token))


def oauthbearer(user, token):
    return b64('n,%s,\x01host=relay.test\x01port=465\x01auth=Bearer %s\x01\x01' % (
        'a=' + user if user else '', token))


PAYLOAD = {'XOAUTH2': xoauth2, 'OAUTHBEARER': oauthbearer}


def connect(relay, listener='smtps'):
    """A RawClient after EHLO (and STARTTLS on the submission listener)."""
    if listener == 'smtps':
        c = relay.raw()
    else:
        c = relay.raw(tls=False)
        c.cmd(b'EHLO client.test')
        c.starttls(relay.tls_context())
    assert c.cmd(b'EHLO client.test').code == 250
    return c
