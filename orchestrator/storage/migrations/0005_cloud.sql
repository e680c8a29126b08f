-- 0005: cloud registration. A session may send its devices to register with a cloud
-- (ThingsBoard): where (`cloud`, JSON, no secret) and the provisioning key and secret
-- (`sealed_cloud`, encrypted by the caller like the Wi-Fi password). A verified candidate
-- keeps what the device reported about its registration (`cloud`, JSON).

ALTER TABLE sessions ADD COLUMN cloud TEXT;
ALTER TABLE sessions ADD COLUMN sealed_cloud BLOB;
ALTER TABLE candidates ADD COLUMN cloud TEXT;
