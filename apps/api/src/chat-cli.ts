#!/usr/bin/env node
import { runChatCli } from './chat-command.js';

process.exitCode = await runChatCli(process.argv.slice(2));
