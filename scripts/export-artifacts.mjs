#!/usr/bin/env node
// Compiles contracts/src with the pinned solc-js and writes the artifacts the Rust side embeds
// (ABI, creation and runtime bytecode) into contracts/artifacts/, one JSON file per contract.
//
//   node scripts/export-artifacts.mjs          write contracts/artifacts/
//   node scripts/export-artifacts.mjs --check  fail if contracts/artifacts/ differs from a fresh compile
//
// The compiler settings mirror contracts/foundry.toml, so forge and the Rust side run the same code.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const contractsDir = join(root, "contracts");
const srcDir = join(contractsDir, "src");
const outDir = join(contractsDir, "artifacts");
const nodeModules = join(root, "node_modules");
const check = process.argv.includes("--check");

const require = createRequire(import.meta.url);
let solc;
try {
  solc = require(join(nodeModules, "solc"));
} catch {
  console.error("solc-js is not installed: run `npm ci` in the repository root first.");
  process.exit(2);
}

// Keep in step with contracts/foundry.toml.
const settings = {
  optimizer: { enabled: true, runs: 1000 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function solidityFiles(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return solidityFiles(path);
      return name.endsWith(".sol") ? [path] : [];
    });
}

const sources = {};
for (const file of solidityFiles(srcDir)) {
  const unit = relative(contractsDir, file).split(sep).join("/");
  sources[unit] = { content: readFileSync(file, "utf8") };
}

function findImports(path) {
  const candidates = [join(contractsDir, path), join(nodeModules, path)];
  for (const candidate of candidates) {
    if (existsSync(candidate)) return { contents: readFileSync(candidate, "utf8") };
  }
  return { error: `import not found: ${path}` };
}

const output = JSON.parse(
  solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImports }),
);
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}

// Every contract or interface with an ABI defined under contracts/src becomes one artifact.
const wanted = new Map();
for (const [unit, contracts] of Object.entries(output.contracts ?? {})) {
  if (!unit.startsWith("src/")) continue;
  for (const [name, c] of Object.entries(contracts)) {
    // Internal-only libraries have no ABI: nothing to call. Interfaces and abstract contracts are
    // kept (empty bytecode) because clients bind to them, e.g. IStateChannelManager.
    if (c.abi.length === 0) continue;
    const artifact = {
      contractName: name,
      sourceName: unit,
      compiler: solc.version(),
      abi: c.abi,
      bytecode: `0x${c.evm.bytecode.object}`,
      deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
    };
    wanted.set(`${name}.json`, `${JSON.stringify(artifact, null, 2)}\n`);
  }
}
const manifest = {
  compiler: solc.version(),
  settings: { optimizer: settings.optimizer, evmVersion: settings.evmVersion },
  sources: Object.fromEntries(
    Object.entries(sources).map(([unit, { content }]) => [
      unit,
      createHash("sha256").update(content).digest("hex"),
    ]),
  ),
};
wanted.set("manifest.json", `${JSON.stringify(manifest, null, 2)}\n`);

if (check) {
  const present = existsSync(outDir) ? readdirSync(outDir).filter((f) => f.endsWith(".json")) : [];
  const stale = [];
  for (const [file, content] of wanted) {
    const path = join(outDir, file);
    if (!existsSync(path)) stale.push(`missing ${file}`);
    else if (readFileSync(path, "utf8") !== content) stale.push(`differs ${file}`);
  }
  for (const file of present) if (!wanted.has(file)) stale.push(`extra ${file}`);
  if (stale.length > 0) {
    console.error("contracts/artifacts/ is stale: it differs from a fresh compile of contracts/src:");
    for (const line of stale) console.error(`  ${line}`);
    console.error("Fix: run `npm run export-artifacts` and commit contracts/artifacts/.");
    process.exit(1);
  }
  console.log(`contracts/artifacts/ matches a fresh compile (${wanted.size} files).`);
} else {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  for (const [file, content] of wanted) writeFileSync(join(outDir, file), content);
  console.log(`wrote ${wanted.size} files to contracts/artifacts/`);
}
