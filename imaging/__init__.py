"""imaging: the FLEP three-layer image protection pipeline (chaotic scrambling, DWT alpha
blending, AWGN decoded with a DnCNN denoiser) and its NPCR/UACI/entropy metrics."""
