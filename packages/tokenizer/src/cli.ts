#!/usr/bin/env node
import { runTokenizerCli } from './commands.js';

process.exitCode = await runTokenizerCli(process.argv.slice(2));
