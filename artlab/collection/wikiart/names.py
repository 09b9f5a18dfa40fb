"""What the dataset's integers mean: the class-label names of huggan/wikiart's genre, style and artist columns
(as its dataset card lists them), and how an artist's slug and a file name read as words."""

from __future__ import annotations

from typing import Callable


# --- what the dataset's integers mean --------------------------------------------------------------------------
# The ClassLabel names of huggan/wikiart, index = the integer stored in the parquet files. They come from the dataset
# card's ``dataset_info`` (README.md and dataset_infos.json of https://huggingface.co/datasets/huggan/wikiart; 11
# genres including "Unknown Genre", 27 styles, 129 artists including "Unknown Artist"), checked against copies of that
# card on the hub and against several independent projects that hard-code the same lists. Index 49 is stored on the
# card as mis-decoded UTF-8 ("joaquín" read as Latin-1); we keep the card's spelling and fix it only for display.
# Shards written by `datasets` carry these names in their own schema metadata; when present, those win (_label_names).

GENRE_NAMES = ("abstract_painting", "cityscape", "genre_painting", "illustration", "landscape", "nude_painting",
               "portrait", "religious_painting", "sketch_and_study", "still_life", "Unknown Genre")

STYLE_NAMES = ("Abstract_Expressionism", "Action_painting", "Analytical_Cubism", "Art_Nouveau", "Baroque",
               "Color_Field_Painting", "Contemporary_Realism", "Cubism", "Early_Renaissance", "Expressionism",
               "Fauvism", "High_Renaissance", "Impressionism", "Mannerism_Late_Renaissance", "Minimalism",
               "Naive_Art_Primitivism", "New_Realism", "Northern_Renaissance", "Pointillism", "Pop_Art",
               "Post_Impressionism", "Realism", "Rococo", "Romanticism", "Symbolism", "Synthetic_Cubism", "Ukiyo_e")

ARTIST_NAMES = (
    "Unknown Artist", "boris-kustodiev", "camille-pissarro", "childe-hassam", "claude-monet", "edgar-degas",
    "eugene-boudin", "gustave-dore", "ilya-repin", "ivan-aivazovsky", "ivan-shishkin", "john-singer-sargent",
    "marc-chagall", "martiros-saryan", "nicholas-roerich", "pablo-picasso", "paul-cezanne", "pierre-auguste-renoir",
    "pyotr-konchalovsky", "raphael-kirchner", "rembrandt", "salvador-dali", "vincent-van-gogh", "hieronymus-bosch",
    "leonardo-da-vinci", "albrecht-durer", "edouard-cortes", "sam-francis", "juan-gris", "lucas-cranach-the-elder",
    "paul-gauguin", "konstantin-makovsky", "egon-schiele", "thomas-eakins", "gustave-moreau", "francisco-goya",
    "edvard-munch", "henri-matisse", "fra-angelico", "maxime-maufra", "jan-matejko", "mstislav-dobuzhinsky",
    "alfred-sisley", "mary-cassatt", "gustave-loiseau", "fernando-botero", "zinaida-serebriakova", "georges-seurat",
    "isaac-levitan", "joaqu\u00e3\u00adn-sorolla", "jacek-malczewski", "berthe-morisot", "andy-warhol",
    "arkhip-kuindzhi", "niko-pirosmani", "james-tissot", "vasily-polenov", "valentin-serov", "pietro-perugino",
    "pierre-bonnard", "ferdinand-hodler", "bartolome-esteban-murillo", "giovanni-boldini", "henri-martin",
    "gustav-klimt", "vasily-perov", "odilon-redon", "tintoretto", "gene-davis", "raphael", "john-henry-twachtman",
    "henri-de-toulouse-lautrec", "antoine-blanchard", "david-burliuk", "camille-corot", "konstantin-korovin",
    "ivan-bilibin", "titian", "maurice-prendergast", "edouard-manet", "peter-paul-rubens", "aubrey-beardsley",
    "paolo-veronese", "joshua-reynolds", "kuzma-petrov-vodkin", "gustave-caillebotte", "lucian-freud", "michelangelo",
    "dante-gabriel-rossetti", "felix-vallotton", "nikolay-bogdanov-belsky", "georges-braque", "vasily-surikov",
    "fernand-leger", "konstantin-somov", "katsushika-hokusai", "sir-lawrence-alma-tadema", "vasily-vereshchagin",
    "ernst-ludwig-kirchner", "mikhail-vrubel", "orest-kiprensky", "william-merritt-chase", "aleksey-savrasov",
    "hans-memling", "amedeo-modigliani", "ivan-kramskoy", "utagawa-kuniyoshi", "gustave-courbet", "william-turner",
    "theo-van-rysselberghe", "joseph-wright", "edward-burne-jones", "koloman-moser", "viktor-vasnetsov",
    "anthony-van-dyck", "raoul-dufy", "frans-hals", "hans-holbein-the-younger", "ilya-mashkov",
    "henri-fantin-latour", "m.c.-escher", "el-greco", "mikalojus-ciurlionis", "james-mcneill-whistler",
    "karl-bryullov", "jacob-jordaens", "thomas-gainsborough", "eugene-delacroix", "canaletto",
)

#: Display fixes for names that a slug cannot spell.
ARTIST_DISPLAY = {"joaqu\u00e3\u00adn-sorolla": "Joaquín Sorolla", "m.c.-escher": "M. C. Escher"}

#: The GenRe study's four genres, in WikiArt's spelling.
STUDY_GENRES = ("portrait", "landscape", "still_life", "sketch_and_study")

HUB_REPO = "huggan/wikiart"
LICENSE = "WikiArt (for research; check each work's rights)"
CACHE = ".cache"
REJECTS = "wikiart-rejects.json"


#: Bytes fetched so far, bytes this build fetches.
DownloadProgressFn = Callable[[int, int], None]
