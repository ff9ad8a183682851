"""The seL4 target: building a Microkit SDK, typed C channels, images from the model, booting under QEMU."""
