// Well-known package names that new dependencies (review) and fetched packages (the
// gateway's package firewall) are compared with for typosquats.
// Policy (review.dependencies.popular) adds to these. Sources: the most depended-upon
// packages of each registry; a list, not a download feed, so review works offline.

export const POPULAR: Record<'npm' | 'pypi' | 'cargo' | 'go', string[]> = {
  npm: `lodash react react-dom express axios chalk commander debug moment request typescript webpack babel-core
@babel/core @babel/preset-env @types/node @types/react jquery vue angular rxjs tslib uuid dotenv yargs inquirer
fs-extra glob minimist semver async bluebird underscore classnames prop-types redux react-redux next nuxt
eslint prettier jest mocha chai sinon ts-node nodemon cross-env rimraf mkdirp body-parser cors helmet morgan
jsonwebtoken bcrypt bcryptjs mongoose mongodb mysql mysql2 pg sequelize knex redis ioredis socket.io ws
node-fetch cheerio puppeteer playwright zod yup joi ajv date-fns dayjs luxon nanoid bignumber.js big.js
colors ora boxen figlet shelljs execa got superagent form-data qs querystring path-to-regexp
core-js regenerator-runtime postcss autoprefixer tailwindcss sass less styled-components emotion
graphql apollo-server @apollo/client typeorm prisma @prisma/client aws-sdk @aws-sdk/client-s3 firebase
electron vite rollup esbuild parcel gulp grunt browserify karma cypress vitest supertest nock
handlebars ejs pug mustache marked markdown-it highlight.js js-yaml yaml xml2js fast-xml-parser
multer busboy sharp jimp canvas pdfkit nodemailer twilio stripe passport passport-local express-session
cookie-parser compression serve-static http-proxy http-proxy-middleware winston pino bunyan log4js
chokidar lru-cache node-cache cron node-cron agenda bull bullmq kafkajs amqplib immer mobx zustand
crypto-js node-forge tweetnacl elliptic web3 ethers cross-spawn which tar archiver adm-zip jszip
event-stream coffee-script babel-cli opencollective electron-builder npm yarn pnpm lerna nx turbo`.split(/\s+/),
  pypi: `requests urllib3 numpy pandas scipy matplotlib django flask fastapi sqlalchemy boto3 botocore
setuptools wheel pip six python-dateutil pytz pyyaml jinja2 markupsafe click certifi idna charset-normalizer
cryptography pyopenssl paramiko pillow beautifulsoup4 lxml selenium scrapy pytest tox mock coverage
tensorflow torch keras scikit-learn xgboost lightgbm transformers openai langchain pydantic attrs
aiohttp httpx uvicorn gunicorn celery redis pymongo psycopg2 psycopg2-binary mysqlclient pymysql
colorama termcolor tqdm rich typer docopt fire jmespath s3transfer rsa pyasn1 google-auth protobuf
grpcio simplejson ujson orjson toml tomli packaging pyparsing decorator wrapt jsonschema marshmallow
werkzeug itsdangerous asgiref starlette black flake8 pylint mypy isort virtualenv pipenv poetry
dateparser arrow pendulum nltk spacy opencv-python pygments sympy networkx seaborn plotly dash
jellyfish python-nmap nmap urllib3-secure-extra discord.py slack-sdk twilio stripe sentry-sdk`.split(/\s+/),
  cargo: `serde serde_json serde_derive tokio rand clap regex log env_logger anyhow thiserror reqwest hyper
futures lazy_static once_cell chrono time uuid itertools bytes syn quote proc-macro2 libc rayon
crossbeam tracing tracing-subscriber axum actix-web diesel sqlx base64 sha2 ring rustls openssl
bitflags cfg-if memchr num-traits parking_lot smallvec tempfile walkdir glob toml url`.split(/\s+/),
  go: `github.com/sirupsen/logrus github.com/gin-gonic/gin github.com/spf13/cobra github.com/spf13/viper
github.com/stretchr/testify github.com/gorilla/mux github.com/google/uuid github.com/pkg/errors
github.com/golang/protobuf google.golang.org/grpc google.golang.org/protobuf github.com/go-redis/redis
github.com/redis/go-redis github.com/lib/pq github.com/jackc/pgx github.com/go-sql-driver/mysql
gorm.io/gorm github.com/labstack/echo github.com/gofiber/fiber github.com/prometheus/client_golang
go.uber.org/zap github.com/rs/zerolog golang.org/x/crypto golang.org/x/net golang.org/x/sys
golang.org/x/text github.com/aws/aws-sdk-go github.com/aws/aws-sdk-go-v2 k8s.io/client-go
github.com/docker/docker github.com/hashicorp/terraform github.com/urfave/cli github.com/mattn/go-sqlite3
github.com/golang-jwt/jwt github.com/dgrijalva/jwt-go github.com/gorilla/websocket github.com/spf13/pflag`.split(/\s+/),
};
