from tests.realserver.fixtures import (  # noqa: F401  (re-exported as fixtures)
    llama_server_binary,
    llama_small,
    llama_small_model,
    llama_tiny,
    llama_tiny_model,
)
