"""The data owner's side: keys, encrypted dataset directories, decryption, encrypted inference.

The hospital keeps its key file and plain scans; the server gets an
encrypted dataset directory it can train on without the key:

  store     the directory format (manifest.json + deterministic .npz shards,
            SHA-256 per shard, atomic writes); numpy only
  inputs    reading plain sources (MedMNIST .npz, PNG/JPEG/DICOM class
            folders), listing every unusable input with a reason
  dataset   encrypt_dataset (resumable after SIGKILL, byte-identical output)
            and decrypt_dataset (refuses a key with another fingerprint)
  predict   loading a model trained by `train_and_evaluate` and classifying
            encrypted directories or new plain scans (encrypted with the key)

The `lie-jax keygen | encrypt | decrypt | predict | inspect` commands
(`lie_jax.cli.owner`) are thin wrappers over these. Submodules are imported
on use: `import lie_jax.owner` stays free of JAX.
"""
