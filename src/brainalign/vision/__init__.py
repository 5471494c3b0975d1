"""Image-computable encoding models of visual cortex: NSD-format data, fwRF, GNet, transfer between ROIs."""
