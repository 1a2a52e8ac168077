"""Input: datasets (TFDS, folders, arrays, the embedded shapes), augmentations, blur and the tf.data pipeline."""
