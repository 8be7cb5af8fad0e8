import { createRequire, register } from "node:module";
import { dirname, sep } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
const BACKEND_ENV = "HANMADI_BACKEND";
class BackendUnavailableError extends Error {
  name = "BackendUnavailableError";
}
const CHOICES = ["auto", "tensorflow", "wasm", "cpu", "webgpu"];
const TFJS_NODE_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"];
const WEBGPU_FLAGS_ENV = "HANMADI_WEBGPU_FLAGS";
const WEBGPU_COMPAT_ENV = "HANMADI_WEBGPU_COMPAT";
function parseBackendChoice(value, source) {
  const choice = value.trim().toLowerCase();
  if (CHOICES.includes(choice)) return choice;
  const hint = ["gpu", "cuda", "tfjs-node", "tfjs-node-gpu", "node"].includes(choice) ? ' (a GPU through CUDA is "tensorflow" with @tensorflow/tfjs-node-gpu installed; "webgpu" uses Vulkan or OpenGL ES)' : "";
  throw new BackendUnavailableError(`${source}: unknown backend "${value}"; expected one of ${CHOICES.join(", ")}${hint}`);
}
const started = /* @__PURE__ */ new Map();
let pending = Promise.resolve();
async function initBackend(choice, log = logToStderr) {
  const run = pending.then(() => start(choice, log));
  pending = run.catch(() => void 0);
  return run;
}
async function start(choice, log) {
  const fromEnv = process.env[BACKEND_ENV]?.trim();
  const resolved = choice ?? (fromEnv ? parseBackendChoice(fromEnv, BACKEND_ENV) : "auto");
  const source = choice !== void 0 ? "requested" : fromEnv ? `${BACKEND_ENV}=${resolved}` : "auto";
  await registerGradients();
  let entry = started.get(resolved);
  if (entry) {
    if (tf.getBackend() !== entry.info.name) await activate(entry.info.name);
  } else {
    entry = resolved === "auto" ? await startAuto() : { info: await startNamed(resolved) };
    started.set(resolved, entry);
  }
  await tf.ready();
  const why = resolved === "auto" ? entry.autoReason ? `auto: ${entry.autoReason}` : "auto" : source;
  log(`backend: ${entry.info.detail} \u2014 ${why}`);
  return entry.info;
}
async function startAuto() {
  const tensorflow = await startTensorflow();
  if ("info" in tensorflow) return { info: tensorflow.info };
  const skipped = [tensorflow.reason];
  try {
    return { info: await startWasm(), autoReason: skipped.join("; ") };
  } catch (error) {
    skipped.push(`wasm failed: ${messageOf(error)}`);
  }
  return { info: await startCpu(), autoReason: skipped.join("; ") };
}
async function startNamed(name) {
  switch (name) {
    case "tensorflow": {
      const result = await startTensorflow();
      if ("info" in result) return result.info;
      throw new BackendUnavailableError(
        `backend "tensorflow" is unavailable: ${result.noneInstalled ? `neither ${TFJS_NODE_PACKAGES.join(" nor ")} is installed` : result.reason}. On a machine with an NVIDIA GPU (CUDA 11.2, cuDNN 8.1) install @tensorflow/tfjs-node-gpu@4.22.0 at the workspace root (pnpm add -w @tensorflow/tfjs-node-gpu@4.22.0), elsewhere @tensorflow/tfjs-node@4.22.0, and set its allowBuilds entry in pnpm-workspace.yaml to true so its install script can download libtensorflow; or choose the wasm backend.`
      );
    }
    case "wasm":
      try {
        return await startWasm();
      } catch (error) {
        throw new BackendUnavailableError(`backend "wasm" is unavailable: ${messageOf(error)}`);
      }
    case "cpu":
      return startCpu();
    case "webgpu":
      return startWebgpu();
  }
}
async function activate(name) {
  if (!await tf.setBackend(name)) throw new BackendUnavailableError(`backend "${name}" failed to initialise (see the warning above)`);
}
async function startTensorflow() {
  const missing = [];
  const failed = [];
  for (const pkg of TFJS_NODE_PACKAGES) {
    try {
      await import(
        /* @vite-ignore */
        pkg
      );
    } catch (error) {
      if (isNotInstalled(error, pkg)) missing.push(pkg);
      else failed.push(`${pkg} failed to load: ${messageOf(error)}`);
      continue;
    }
    if (!await tf.setBackend("tensorflow")) {
      failed.push(`${pkg} failed to initialise`);
      continue;
    }
    const usingGpu = tf.backend().isUsingGpuDevice;
    const gpu = pkg.endsWith("-gpu") ? usingGpu === true ? " (GPU device: yes)" : " (no GPU device seen: running on the CPU; check CUDA 11.2 and cuDNN 8.1)" : "";
    return { info: { name: "tensorflow", detail: `${pkg}${gpu}` } };
  }
  const all = missing.length === TFJS_NODE_PACKAGES.length;
  const notInstalled = missing.length === 0 ? [] : all ? [`${missing.join(" and ")} not installed`] : missing.map((p) => `${p} not installed`);
  return { reason: [...failed, ...notInstalled].join("; "), noneInstalled: all };
}
function isNotInstalled(error, pkg) {
  const code = error?.code;
  return (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" || /cannot find (module|package)/iu.test(messageOf(error))) && messageOf(error).includes(`'${pkg}'`);
}
async function startWasm() {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  if (!started.has("wasm") && tf.findBackend("wasm") === null) {
    const entry = createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm");
    wasm.setWasmPaths(`${dirname(entry)}${sep}`);
  }
  await activate("wasm");
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") === true;
  const threads = wasm.getThreadsCount();
  return { name: "wasm", detail: `wasm (${simd ? "SIMD" : "no SIMD"}, ${threads} thread${threads === 1 ? "" : "s"})` };
}
async function startCpu() {
  await activate("cpu");
  const backend = tf.findBackend("cpu");
  if (backend?.firstUse) backend.firstUse = false;
  return { name: "cpu", detail: "cpu (JavaScript)" };
}
async function startWebgpu() {
  let dawn;
  try {
    dawn = await import("webgpu");
  } catch (error) {
    throw new BackendUnavailableError(`backend "webgpu" is unavailable: Dawn (npm package webgpu) failed to load: ${messageOf(error)}`);
  }
  Object.assign(globalThis, dawn.globals);
  const tried = [];
  for (const attempt of dawnAttempts()) {
    if (attempt.flags.some((f) => /^backend=opengl(es)?$/u.test(f))) process.env["EGL_PLATFORM"] ??= "surfaceless";
    const label = `${attempt.flags.length > 0 ? attempt.flags.join(" ") : "Dawn defaults"}${attempt.compat ? " + compatibility adapter" : ""}`;
    let gpu;
    let adapter;
    try {
      gpu = dawn.create(attempt.flags);
      adapter = await gpu.requestAdapter({ powerPreference: "high-performance", ...attempt.compat ? { featureLevel: "compatibility" } : {} });
    } catch (error) {
      tried.push(`${label}: ${messageOf(error)}`);
      continue;
    }
    if (adapter === null) {
      tried.push(`${label}: no adapter`);
      continue;
    }
    await installWebgpuBackend(gpu, adapter, attempt.compat);
    const info = adapter.info;
    const name = [info.vendor, info.architecture, info.device, info.description].filter((s) => s !== "").join(" ") || "unnamed";
    const how = [attempt.compat ? "compatibility" : "", attempt.flags.join(" ")].filter((s) => s !== "").join(", ");
    return { name: "webgpu", detail: `webgpu (adapter: ${name}${how ? `; ${how}` : ""})` };
  }
  throw new BackendUnavailableError(
    `backend "webgpu" is unavailable: no WebGPU adapter found (tried ${tried.join("; ")}). With a GPU, install its Vulkan driver and loader (libvulkan1); without one, install Mesa EGL/GLES (apt-get install libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for Dawn's OpenGL ES backend on llvmpipe. ${WEBGPU_FLAGS_ENV} (comma-separated Dawn flags, e.g. backend=vulkan) and ${WEBGPU_COMPAT_ENV}=1 choose the adapter by hand; or choose the wasm backend.`
  );
}
function dawnAttempts() {
  const flagsEnv = process.env[WEBGPU_FLAGS_ENV]?.trim();
  const compatEnv = process.env[WEBGPU_COMPAT_ENV]?.trim();
  const compat = compatEnv === "1" || compatEnv === "true";
  if (flagsEnv) return [{ flags: splitDawnFlags(flagsEnv), compat }];
  const attempts = [{ flags: [], compat }];
  if (compatEnv !== "0" && compatEnv !== "false") attempts.push({ flags: ["backend=opengles"], compat: true });
  return attempts;
}
function splitDawnFlags(value) {
  const flags = [];
  for (const part of value.split(",").map((p) => p.trim())) {
    if (part === "") continue;
    if (part.includes("=") || flags.length === 0) flags.push(part);
    else flags[flags.length - 1] += `,${part}`;
  }
  return flags;
}
async function installWebgpuBackend(gpu, adapter, compat) {
  let probed = adapter;
  const requestAdapter = async (options) => {
    if (probed !== null) {
      const first = probed;
      probed = null;
      return first;
    }
    return gpu.requestAdapter({ ...options, ...compat ? { featureLevel: "compatibility" } : {} });
  };
  const view = new Proxy(gpu, {
    get(target, property) {
      if (property === "requestAdapter") return requestAdapter;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    }
  });
  const holder = globalThis;
  if (holder.navigator === void 0) holder.navigator = { gpu: view };
  else Object.defineProperty(holder.navigator, "gpu", { value: view, configurable: true, writable: true });
  if (tf.findBackendFactory("webgpu") !== null) tf.removeBackend("webgpu");
  await import("@tensorflow/tfjs-backend-webgpu");
  if (tf.findBackendFactory("webgpu") === null) {
    throw new BackendUnavailableError(
      'backend "webgpu" is unavailable: @tensorflow/tfjs-backend-webgpu was imported before navigator.gpu existed, so it never registered; import it only through initBackend'
    );
  }
  await activate("webgpu");
}
let gradients;
async function registerGradients() {
  gradients ??= (async () => {
    register(`data:text/javascript,${encodeURIComponent(EXTENSIONLESS_CORE_HOOK)}`);
    await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  })();
  return gradients;
}
const EXTENSIONLESS_CORE_HOOK = `
const core = /\\/@tensorflow\\/tfjs-core\\/dist\\//;
const bundle = /\\/@tensorflow\\/tfjs-core\\/dist\\/tf-core\\./;
const esm = (r) => (core.test(r.url) && !bundle.test(r.url) ? { ...r, format: 'module' } : r);
export async function resolve(specifier, context, next) {
  if (!specifier.startsWith('.') || !core.test(context.parentURL ?? '') || /\\.[cm]?js$/.test(specifier)) {
    return esm(await next(specifier, context));
  }
  // Nearly every import here is a file without its extension; a few name a folder.
  try {
    return esm(await next(specifier + '.js', context));
  } catch {
    return esm(await next(specifier + '/index.js', context));
  }
}
`;
function messageOf(error) {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0].trim();
}
function logToStderr(message) {
  process.stderr.write(`${message}
`);
}
export {
  BACKEND_ENV,
  BackendUnavailableError,
  initBackend,
  parseBackendChoice
};
