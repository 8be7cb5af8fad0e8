import * as tf from '@tensorflow/tfjs-core';
import { Rng } from './random.js';

let storeCounter = 0;

/**
 * The model's trainable tensors by stable names (`encoder.layers.0.ffn.w1`),
 * the names under which they are saved. TensorFlow.js keeps one global
 * registry of variable names, so each store prefixes its own id.
 */
export class ParamStore {
  readonly variables = new Map<string, tf.Variable>();
  private readonly prefix = `hanmadi${storeCounter++}/`;
  /** Fixed tensors the layers derive once (not trained, not saved), released with the parameters. */
  private readonly constants = new Map<string, tf.Tensor>();

  /** Tensors derived from the parameters for inference, dropped whenever they change. */
  private readonly derivedValues = new Map<string, { value: unknown; tensors: tf.Tensor[] }>();

  constructor(private readonly rng: Rng) {}

  private add(name: string, value: tf.Tensor): tf.Variable {
    if (this.variables.has(name)) throw new Error(`duplicate parameter ${name}`);
    const v = tf.variable(value, true, this.prefix + name);
    value.dispose();
    this.variables.set(name, v);
    return v;
  }

  /** Glorot/Xavier uniform, the initialisation of the reference implementations. */
  xavier(name: string, fanIn: number, fanOut: number): tf.Variable<tf.Rank.R2> {
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    return this.add(name, tf.randomUniform([fanIn, fanOut], -limit, limit, 'float32', this.rng.nextUint32())) as tf.Variable<tf.Rank.R2>;
  }

  normal(name: string, shape: [number, number], std: number): tf.Variable<tf.Rank.R2> {
    return this.add(name, tf.randomNormal(shape, 0, std, 'float32', this.rng.nextUint32())) as tf.Variable<tf.Rank.R2>;
  }

  zeros(name: string, size: number): tf.Variable<tf.Rank.R1> {
    return this.add(name, tf.zeros([size])) as tf.Variable<tf.Rank.R1>;
  }

  ones(name: string, size: number): tf.Variable<tf.Rank.R1> {
    return this.add(name, tf.ones([size])) as tf.Variable<tf.Rank.R1>;
  }

  /** The parameter name of a variable as TensorFlow.js registered it. */
  nameOf(variableName: string): string {
    return variableName.startsWith(this.prefix) ? variableName.slice(this.prefix.length) : variableName;
  }

  get(name: string): tf.Variable {
    const v = this.variables.get(name);
    if (v === undefined) throw new Error(`no parameter ${name}`);
    return v;
  }

  /** Number of scalars over all parameters. */
  get size(): number {
    let n = 0;
    for (const v of this.variables.values()) n += v.size;
    return n;
  }

  /** A constant made once per store and key, kept until the store is disposed. */
  constant<T extends tf.Tensor>(key: string, make: () => T): T {
    let t = this.constants.get(key);
    if (t === undefined) this.constants.set(key, (t = tf.keep(make())));
    return t as T;
  }

  /**
   * A tensor, or a record of tensors, computed from the current parameters once
   * and kept until {@link invalidateDerived} (the parameters changed) or
   * {@link dispose}. It must not be a parameter itself: it is disposed.
   */
  derived<T extends tf.Tensor | Record<string, tf.Tensor>>(key: string, make: () => T): T {
    let entry = this.derivedValues.get(key);
    if (entry === undefined) {
      const value = tf.tidy(make);
      const tensors = value instanceof tf.Tensor ? [value] : Object.values(value);
      for (const t of tensors) tf.keep(t);
      this.derivedValues.set(key, (entry = { value, tensors }));
    }
    return entry.value as T;
  }

  /** Releases every derived tensor: the next use recomputes it from the parameters. */
  invalidateDerived(): void {
    for (const { tensors } of this.derivedValues.values()) tf.dispose(tensors);
    this.derivedValues.clear();
  }

  dispose(): void {
    this.invalidateDerived();
    for (const v of this.variables.values()) v.dispose();
    for (const c of this.constants.values()) c.dispose();
    this.variables.clear();
    this.constants.clear();
  }
}

/**
 * How a forward pass of the paper modules runs. In training, dropout (§5.4)
 * draws reproducible masks, each call taking its seed from a per-step
 * generator so that the same step of a resumed run drops the same units.
 * `ForwardPass.inference` drops nothing (evaluation); decoding and validation
 * run the inference form instead (inference/transformer.ts).
 */
export class ForwardPass {
  private readonly rng: Rng | undefined;

  private constructor(
    readonly rate: number,
    seed: number | undefined,
  ) {
    this.rng = seed === undefined || rate === 0 ? undefined : new Rng(seed);
  }

  /** A training pass; without a seed dropout is off. */
  static training(rate: number, seed: number | undefined): ForwardPass {
    return new ForwardPass(rate, seed);
  }

  /** A pass without dropout. */
  static readonly inference = new ForwardPass(0, undefined);

  /**
   * Inverted dropout: zeroes each unit with probability `rate` and scales the
   * survivors by 1/(1 − rate). The mask, scale folded in, is drawn here in one
   * pass rather than by tf.dropout's four kernels and its slower generator; a
   * product with a constant needs no custom gradient.
   */
  dropout<T extends tf.Tensor>(x: T): T {
    if (this.rng === undefined) return x;
    const mask = new Rng(this.rng.nextUint32()).dropoutMask(x.size, this.rate);
    return tf.mul(x, tf.tensor(mask, x.shape, 'float32')) as T;
  }
}
