#!/usr/bin/env node
import { runServeCli } from './serve-command.js';

process.exitCode = await runServeCli(process.argv.slice(2));
