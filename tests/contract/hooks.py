"""schemathesis hooks for tests/blackbox/contract.rs (loaded through SCHEMATHESIS_HOOKS).

schemathesis revokes tokens it finds: its stateful phase follows `GET /api/v1/tokens` to
`DELETE /api/v1/tokens/{id}`. Every token may go except the one schemathesis itself
authenticates with (SWITCHYARD_OWN_TOKEN_ID): revoking that would leave the rest of the
run testing nothing but 401s. Its revocation is sent for an id that does not exist instead.
"""

import os

import schemathesis

OWN_TOKEN_ID = os.environ["SWITCHYARD_OWN_TOKEN_ID"]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.method.upper() == "DELETE" and case.path_parameters:
        if case.path_parameters.get("id") == OWN_TOKEN_ID:
            case.path_parameters["id"] = "not-the-runs-own-token"
