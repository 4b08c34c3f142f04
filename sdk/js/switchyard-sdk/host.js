// The one place the SDK touches the contract's `host` interface. Inside a component,
// componentize-js binds this specifier to the host's imports; under `node --test`, the
// loader in testing/register.js maps it to testing/host.js, a programmable stand-in.
export {
  log as hostLog,
  config as hostConfig,
  secret as hostSecret,
  now as hostNow,
  fetch as hostFetch,
} from 'switchyard:plugin/host@0.2.0';
