// The words the proxy writes to servers on its own account (deletes, touches,
// warm-up lookups and fills, flushes), as bytes ready to copy.

export const SPACE = Buffer.from(' ');
export const SET = Buffer.from('set');
export const DELETE = Buffer.from('delete ');
export const TOUCH = Buffer.from('touch ');
export const FLUSH_ALL = Buffer.from('flush_all\r\n');
export const MD = Buffer.from('md ');
export const MS = Buffer.from('ms ');
/** a meta key given in base64 */
export const BASE64_FLAG = Buffer.from(' b');
