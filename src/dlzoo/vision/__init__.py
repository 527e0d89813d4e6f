"""Image reading and preprocessing shared by training and prediction."""
