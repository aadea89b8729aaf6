// The same chat as handlers/ on serverless-offline: a connection list in a file, a broadcast over @connections.
const fs = require("fs");

const FILE = process.env.CONNECTIONS_FILE;

function load() {
  try {
    return JSON.parse(fs.readFileSync(FILE, "utf8"));
  } catch {
    return [];
  }
}

function save(ids) {
  fs.writeFileSync(FILE, JSON.stringify(ids));
}

exports.connect = async (event) => {
  save([...load(), event.requestContext.connectionId]);
  return { statusCode: 200 };
};

exports.disconnect = async (event) => {
  save(load().filter((id) => id !== event.requestContext.connectionId));
  return { statusCode: 200 };
};

exports.sendmessage = async (event) => {
  const { message } = JSON.parse(event.body);
  const frame = JSON.stringify({ type: "message", message, from: event.requestContext.connectionId });
  await Promise.all(
    load().map((id) =>
      fetch(`http://127.0.0.1:${process.env.WS_PORT}/@connections/${encodeURIComponent(id)}`, {
        method: "POST",
        body: frame,
      }),
    ),
  );
  return { statusCode: 200 };
};
