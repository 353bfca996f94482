// Initiate the replica set (once) and create the CAAS application user with readWrite on `caas`.
const status = (() => { try { return rs.status(); } catch (e) { return null; } })();
if (!status || status.ok !== 1) {
  rs.initiate({
    _id: "rs0",
    members: [
      { _id: 0, host: "mongo-1:27017", priority: 2 },
      { _id: 1, host: "mongo-2:27017", priority: 1 },
      { _id: 2, host: "mongo-3:27017", priority: 1 },
    ],
  });
}
while (!db.hello().isWritablePrimary) { sleep(1000); }
const app = db.getSiblingDB("admin");
const user = process.env.CAAS_MONGO_APP_USER || "caas";
const password = process.env.CAAS_MONGO_APP_PASSWORD;
if (!password) { throw new Error("CAAS_MONGO_APP_PASSWORD is not set; put it in .env"); }
if (!app.getUser(user)) {
  app.createUser({ user, pwd: password, roles: [{ role: "readWrite", db: "caas" }] });
}
print("replica set rs0 ready, user " + user + " present");
