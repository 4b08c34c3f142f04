// `node --test --import switchyard-sdk/testing/register` (or this file's path): makes
// `switchyard:plugin/host@0.2.0` resolve to a programmable stand-in, so a plugin's code
// and the SDK run under plain Node. Program it with `mockHost` from 'switchyard-sdk/testing'.
import { register } from 'node:module';

register(new URL('./hooks.js', import.meta.url));
