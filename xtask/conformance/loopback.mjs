// Preloaded (node --import) into the conformance suite's origin server: a listen() given only a port listens
// on 127.0.0.1, not on every interface. Nothing else of the suite changes.
import net from 'node:net'

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const portOnly = (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) &&
    (args.length === 1 || typeof args[1] === 'function')
  if (portOnly) args.splice(1, 0, '127.0.0.1')
  return listen.apply(this, args)
}
