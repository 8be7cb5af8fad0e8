#!/usr/bin/env node
import { runTrainCli } from './train-command.js';

process.exitCode = await runTrainCli(process.argv.slice(2));
