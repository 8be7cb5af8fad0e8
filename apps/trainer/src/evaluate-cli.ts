#!/usr/bin/env node
import { runEvaluateCli } from './evaluate-command.js';

process.exitCode = await runEvaluateCli(process.argv.slice(2));
