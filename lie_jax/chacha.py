"""ChaCha20 as a JAX PRNG implementation: 256-bit keys from a cryptographic generator.

Why: jax.random's default generator, threefry2x32, has 64-bit keys, so a cipher key drawn
from one has at most 64 bits of effective key space whatever secret seeded it; and jax.random
makes no cryptographic claim for its output. `CHACHA20` plugs into jax.random like threefry
(`jax.random.permutation`, `split`, `fold_in`, ... work unchanged, under jit and vmap), with
256-bit keys and ChaCha20 (RFC 8439), a stream cipher, as the generator.

Construction: the ChaCha20 block function F(key, counter, nonce) is used as a pseudorandom
function keyed by the parent key; the first nonce word separates its three uses, so no block
serves two of them:

- `random_bits`: the keystream, nonce (0, 0, 0) and counters 0, 1, 2, ..., read as
  little-endian 8/16/32/64-bit words (8-bit draws are the keystream bytes in RFC order).
  One call draws at most 2**32 blocks (256 GiB).
- `split`: child i is the first 8 words of F(key, i, (1, 0, 0)).
- `fold_in(data)`: the first 8 words of F(key, 0, (2, data, 0)).
- `seed(s)`: the key words (s mod 2**32, s >> 32, 0, ..., 0). An integer seed holds at most
  64 bits: use it for experiments only; real keys come from 32 secret bytes (`key_from_bytes`).

Everything is uint32 addition, xor and rotation, with no floating point, so a key gives
bit-identical values on every backend (CPU, GPU, TPU).

Example:
  >>> import jax
  >>> from lie_jax import chacha
  >>> key = chacha.key_from_bytes(bytes(32))
  >>> jax.random.bits(key, (4,), dtype=jax.numpy.uint8)  # RFC 8439 A.1, test vector 1
  Array([118, 184, 224, 173], dtype=uint8)
  >>> sorted(jax.random.permutation(jax.random.fold_in(key, 7), 5).tolist())
  [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import functools
import math

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax import lax

KEY_BITS = 256
_SIGMA = np.frombuffer(b"expand 32-byte k", dtype="<u4")
_KEYSTREAM, _SPLIT, _FOLD_IN = 0, 1, 2  # first nonce word: domain separation
_MAX_BLOCKS = 2**32  # the block counter is one uint32 word
_COLUMNS = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15))
_DIAGONALS = ((0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))


def _rotl(x: jax.Array, n: int) -> jax.Array:
  return lax.shift_left(x, np.uint32(n)) | lax.shift_right_logical(x, np.uint32(32 - n))


def _quarter_round(s: list[jax.Array], a: int, b: int, c: int, d: int) -> None:
  s[a] = s[a] + s[b]
  s[d] = _rotl(s[d] ^ s[a], 16)
  s[c] = s[c] + s[d]
  s[b] = _rotl(s[b] ^ s[c], 12)
  s[a] = s[a] + s[b]
  s[d] = _rotl(s[d] ^ s[a], 8)
  s[c] = s[c] + s[d]
  s[b] = _rotl(s[b] ^ s[c], 7)


def _double_round(_, state: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
  s = list(state)
  for a, b, c, d in _COLUMNS + _DIAGONALS:
    _quarter_round(s, a, b, c, d)
  return tuple(s)


def chacha20_block(key: jax.typing.ArrayLike, counter: jax.typing.ArrayLike,
                   nonce: jax.typing.ArrayLike) -> jax.Array:
  """The ChaCha20 block function of RFC 8439, section 2.3.

  Args:
    key: [8] uint32, the 256-bit key as little-endian words.
    counter: [] uint32, the block counter.
    nonce: [3] uint32, the 96-bit nonce as little-endian words.

  Returns:
    [16] uint32: the block, 20 rounds over the state plus the input state.

  Example (RFC 8439, 2.3.2):
    >>> key = np.arange(32, dtype=np.uint8).view("<u4")
    >>> nonce = np.frombuffer(bytes.fromhex("000000090000004a00000000"), "<u4")
    >>> hex(int(chacha20_block(key, 1, nonce)[0]))
    '0xe4e7f110'
  """
  key, nonce = jnp.asarray(key, jnp.uint32), jnp.asarray(nonce, jnp.uint32)
  counter = jnp.asarray(counter, jnp.uint32)
  if key.shape != (8,) or nonce.shape != (3,) or counter.shape != ():
    raise ValueError(f"chacha20_block wants key [8], counter [], nonce [3]; got "
                     f"{key.shape}, {counter.shape}, {nonce.shape}")
  init = [jnp.uint32(c) for c in _SIGMA] + list(key) + [counter] + list(nonce)
  # A loop, not 10 unrolled copies: XLA's CPU compiler takes minutes on the unrolled graph.
  s = lax.fori_loop(0, 10, _double_round, tuple(init))
  return jnp.stack([x + x0 for x, x0 in zip(s, init)])


def _blocks(key: jax.Array, nonce: tuple[int, ...] | jax.Array, count: int) -> jax.Array:
  """[count, 16] uint32: blocks with counters 0..count-1."""
  if count > _MAX_BLOCKS:
    raise ValueError(f"chacha20 draws at most {_MAX_BLOCKS} blocks per call, got {count}")
  counters = lax.iota(np.uint32, count)
  nonce = jnp.asarray(nonce, jnp.uint32)
  return jax.vmap(chacha20_block, in_axes=(None, 0, None))(key, counters, nonce)


@jax.jit
def _seed(seed: jax.Array) -> jax.Array:
  if seed.shape or not jnp.issubdtype(seed.dtype, jnp.integer):
    raise TypeError(f"a PRNG seed must be an integer scalar, got {seed.dtype}{list(seed.shape)}")
  if seed.dtype.itemsize == 8:
    low = lax.convert_element_type(seed & np.array(0xFFFFFFFF, seed.dtype), np.uint32)
    high = lax.convert_element_type(lax.shift_right_logical(seed, seed.dtype.type(32)), np.uint32)
  else:
    low, high = lax.convert_element_type(seed, np.uint32), jnp.uint32(0)
  return jnp.concatenate([jnp.stack([low, high]), jnp.zeros(6, jnp.uint32)])


@functools.partial(jax.jit, static_argnums=1)
def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  children = _blocks(key, (_SPLIT, 0, 0), math.prod(shape))[:, :8]
  return children.reshape(*shape, 8)


@jax.jit
def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
  nonce = jnp.stack([jnp.uint32(_FOLD_IN), jnp.asarray(data, jnp.uint32), jnp.uint32(0)])
  return chacha20_block(key, 0, nonce)[:8]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
  if bit_width not in (8, 16, 32, 64):
    raise TypeError(f"chacha20 draws 8-, 16-, 32- or 64-bit words, not {bit_width}-bit")
  size = math.prod(shape)
  num_words = -(-size * bit_width // 32)
  words = _blocks(key, (_KEYSTREAM, 0, 0), -(-num_words // 16)).reshape(-1)[:num_words]
  dtype = np.dtype(f"uint{bit_width}")
  if bit_width == 64:
    pairs = lax.convert_element_type(words.reshape(size, 2), dtype)
    bits = pairs[:, 0] | lax.shift_left(pairs[:, 1], dtype.type(32))
  else:  # little-endian: the low bits of each word come first
    shifts = np.arange(0, 32, bit_width, dtype=np.uint32)
    parts = (words[:, None] >> shifts) & np.uint32(2**bit_width - 1)
    bits = lax.convert_element_type(parts.reshape(-1)[:size], dtype)
  return bits.reshape(shape)


CHACHA20 = jax.extend.random.define_prng_impl(
    key_shape=(8,), seed=_seed, split=_split, random_bits=_random_bits, fold_in=_fold_in,
    name="chacha20", tag="cc20")


def key_from_bytes(data: bytes) -> jax.Array:
  """A CHACHA20 PRNG key (a typed key array, shape []) from exactly 32 secret bytes.

  The bytes are the ChaCha20 key as in RFC 8439: eight little-endian uint32 words.
  """
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise TypeError(f"key_from_bytes wants bytes, got {type(data).__name__}")
  if len(data) != KEY_BITS // 8:
    raise ValueError(f"a chacha20 key is {KEY_BITS // 8} bytes, got {len(data)}")
  words = np.frombuffer(bytes(data), dtype="<u4").astype(np.uint32)
  return jax.random.wrap_key_data(words, impl=CHACHA20)


def impl_name(key: jax.Array) -> str:
  """The name of a typed PRNG key's implementation, as `lie_jax.ciphers.key_space_bits` takes it.

  "chacha20" for `CHACHA20` keys (key files' keys), jax's name ("threefry2x32", "rbg", ...)
  for the others, so a caller reports the key space of the key it actually holds:

    >>> impl_name(key_from_bytes(bytes(32))), impl_name(jax.random.key(0))
    ('chacha20', 'threefry2x32')
  """
  impl = jax.random.key_impl(key)
  return "chacha20" if impl == CHACHA20 else str(impl)
