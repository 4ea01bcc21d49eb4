-- squawk docs "prefer-text-field" ("Instead of"; a later change of the varchar length takes an
-- ACCESS EXCLUSIVE lock):
CREATE TABLE "app_user" (
    "id" serial NOT NULL PRIMARY KEY,
    "email" varchar(100) NOT NULL
);
