"""TLS for the interop scripts, from the environment:
CHIRP_CERT_CHAIN and CHIRP_DH_PARAMS (PEM files; without them DISABLE_ENCRYPTION),
CHIRP_ALWAYS_ENCRYPT=1 to encrypt loopback too (libchirp's ch_chirp_set_always_encrypt,
exported by the extension but not by its cffi layer, so reached through ctypes: the
same loaded library, the same process-wide flag)."""
import ctypes
import os


def apply(config):
    chain = os.environ.get("CHIRP_CERT_CHAIN")
    dh = os.environ.get("CHIRP_DH_PARAMS")
    if not chain:
        config.DISABLE_ENCRYPTION = True
        return
    config.DISABLE_ENCRYPTION = False
    config.CERT_CHAIN_PEM = chain
    config.DH_PARAMS_PEM = dh
    if os.environ.get("CHIRP_ALWAYS_ENCRYPT") == "1":
        import _libchirp_cffi

        ctypes.CDLL(_libchirp_cffi.__file__).ch_chirp_set_always_encrypt()
