"""The Standard Webhooks vectors and cases of sdk/src/webhooks.rs, in Python."""

import time
import unittest

from switchyard_sdk import testing, webhooks
from switchyard_sdk.rejection import Rejection
from switchyard_sdk.webhooks import Secret, VerifyError, verify

# The test vector published with the Standard Webhooks specification.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def check(secrets, signature, body=BODY, now=TIMESTAMP, tolerance=300):
    return verify(secrets, ID, "1614265330", signature, body, now, tolerance)


class SignTest(unittest.TestCase):
    def test_signs_the_specification_vector(self):
        self.assertEqual(Secret.parse(SECRET).sign(ID, TIMESTAMP, BODY), SIGNATURE)
        self.assertEqual(webhooks.sign(SECRET, ID, TIMESTAMP, BODY.decode()), SIGNATURE)

    def test_the_prefix_is_optional_and_whitespace_ignored(self):
        self.assertEqual(Secret.parse("  MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ").sign(ID, TIMESTAMP, BODY), SIGNATURE)

    def test_bad_secrets_are_refused_without_repeating_them(self):
        for bad in ("whsec_not*base64xyz", "whsec_abc", "whsec_", "", "whsec_éé"):
            with self.assertRaises(ValueError) as caught:
                Secret.parse(bad)
            message = str(caught.exception)
            self.assertIn("signing secret", message)
            if bad[6:]:
                self.assertNotIn(bad[6:], message)

    def test_sign_headers(self):
        self.assertEqual(
            webhooks.sign_headers(SECRET, ID, TIMESTAMP, BODY),
            [("webhook-id", ID), ("webhook-timestamp", "1614265330"), ("webhook-signature", SIGNATURE)],
        )


class VerifyTest(unittest.TestCase):
    def test_verifies_with_tolerance_and_several_signatures(self):
        secret = Secret.parse(SECRET)
        other = Secret.parse("whsec_c2VjcmV0")
        self.assertIsNone(check([secret], f"v1,bm9wZQ== {SIGNATURE}", now=TIMESTAMP + 299))
        self.assertIsNone(check([other, secret], SIGNATURE))
        self.assertIsNone(check(SECRET, SIGNATURE, now=TIMESTAMP - 300))
        with self.assertRaises(VerifyError) as caught:
            check([secret], SIGNATURE, now=TIMESTAMP + 301)
        self.assertEqual(caught.exception, VerifyError("outside-tolerance", skew_secs=301))
        self.assertIn("301s away", str(caught.exception))
        with self.assertRaises(VerifyError) as caught:
            check([other], SIGNATURE)
        self.assertEqual(caught.exception.kind, "no-matching-signature")
        with self.assertRaises(VerifyError) as caught:
            check([secret], SIGNATURE, body=b'{"test": 1}')
        self.assertEqual(caught.exception.kind, "no-matching-signature")

    def test_at_most_five_signatures_are_looked_at(self):
        decoy = "v1,bm9wZQ=="
        self.assertIsNone(check([SECRET], f"{decoy} {decoy} {SIGNATURE} {decoy} {decoy}"))
        with self.assertRaises(VerifyError) as caught:
            check([SECRET], f"{SIGNATURE} {decoy} {decoy} {decoy} {decoy} {decoy}")
        self.assertEqual(caught.exception.kind, "too-many-signatures")
        # Entries of other versions are not candidates and are skipped.
        self.assertIsNone(check([SECRET], f"v1a,x v2,y v1a,z v2,w v1a,u v2,t {SIGNATURE}"))

    def test_a_flood_of_signatures_costs_no_hashing(self):
        body = b"x" * (1024 * 1024)
        flood = " ".join(["v1,AAAA"] * 40_000)
        started = time.monotonic()
        with self.assertRaises(VerifyError) as caught:
            check([SECRET], flood, body=body)
        self.assertEqual(caught.exception.kind, "too-many-signatures")
        self.assertLess(time.monotonic() - started, 1.0)

    def test_missing_headers_and_bad_timestamps(self):
        cases = [
            ((None, "1", SIGNATURE), VerifyError("missing-header", header="webhook-id")),
            ((ID, None, SIGNATURE), VerifyError("missing-header", header="webhook-timestamp")),
            ((ID, "1", None), VerifyError("missing-header", header="webhook-signature")),
            ((ID, "-1614265330", SIGNATURE), VerifyError("bad-timestamp")),
            ((ID, "16142653.30", SIGNATURE), VerifyError("bad-timestamp")),
            ((ID, "", SIGNATURE), VerifyError("bad-timestamp")),
            ((ID, "99999999999999999999999", SIGNATURE), VerifyError("bad-timestamp")),
        ]
        for (msg_id, ts, sig), expected in cases:
            with self.assertRaises(VerifyError) as caught:
                verify([SECRET], msg_id, ts, sig, BODY, TIMESTAMP)
            self.assertEqual(caught.exception, expected, (msg_id, ts, sig))
        # Surrounding whitespace and a plus sign are accepted, as Rust's u64 parser does.
        self.assertIsNone(verify([SECRET], ID, " +1614265330 ", SIGNATURE, BODY, TIMESTAMP))

    def test_candidates_that_are_not_base64_never_match(self):
        with self.assertRaises(VerifyError) as caught:
            check([SECRET], "v1,*** v1,abc")
        self.assertEqual(caught.exception.kind, "no-matching-signature")

    def test_verify_request_answers_401_and_returns_the_id(self):
        headers = webhooks.sign_headers(SECRET, ID, TIMESTAMP, BODY)
        with testing.host(now_ms=TIMESTAMP * 1000):
            self.assertEqual(webhooks.verify_request(testing.request(BODY, headers), [SECRET]), ID)
            for secrets in ([None], ["whsec_c2VjcmV0"], [], "whsec_!!"):
                with self.assertRaises(Rejection) as caught:
                    webhooks.verify_request(testing.request(BODY, headers), secrets)
                self.assertEqual((caught.exception.status, caught.exception.code), (401, "invalid-signature"))
        with testing.host(now_ms=(TIMESTAMP + 301) * 1000):
            with self.assertRaises(Rejection) as caught:
                webhooks.verify_request(testing.request(BODY, headers), SECRET)
            self.assertIn("outside the tolerance", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
