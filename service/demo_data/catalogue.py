"""The demo chain's category tree and product assortment, as plain tables.

Prices are ranges in minor units (kopecks) per piece, or per kg for WEIGHT products; the demo
generator draws each price from its range with a seeded random generator.
"""

from __future__ import annotations

from typing import NamedTuple

from service.engine.model import Unit

# (id, name, parent id)
CATEGORIES: tuple[tuple[str, str, str | None], ...] = (
    ("dairy", "Dairy and eggs", None),
    ("milk", "Milk", "dairy"),
    ("cheese", "Cheese", "dairy"),
    ("yogurt", "Yogurt and cottage cheese", "dairy"),
    ("kefir", "Kefir and ryazhenka", "dairy"),
    ("butter", "Butter", "dairy"),
    ("bakery", "Bakery", None),
    ("bread", "Bread", "bakery"),
    ("pastry", "Pastry", "bakery"),
    ("produce", "Fruit and vegetables", None),
    ("fruit", "Fruit", "produce"),
    ("vegetables", "Vegetables", "produce"),
    ("meat", "Meat and poultry", None),
    ("beef", "Beef", "meat"),
    ("pork", "Pork", "meat"),
    ("poultry", "Poultry", "meat"),
    ("sausages", "Sausages and deli", "meat"),
    ("fish", "Fish and seafood", None),
    ("grocery", "Grocery", None),
    ("cereals", "Cereals", "grocery"),
    ("pasta", "Pasta", "grocery"),
    ("sweets", "Sweets and snacks", None),
    ("chocolate", "Chocolate and candies", "sweets"),
    ("snacks", "Snacks", "sweets"),
    ("beverages", "Beverages", None),
    ("water", "Water", "beverages"),
    ("juice", "Juice", "beverages"),
    ("coffee", "Coffee", "beverages"),
    ("tea", "Tea", "beverages"),
    ("household", "Household", None),
    ("cleaning", "Cleaning", "household"),
    ("paper", "Paper goods", "household"),
    ("tobacco", "Tobacco", None),
    ("alcohol", "Alcohol", None),
    ("beer", "Beer", "alcohol"),
    ("wine", "Wine", "alcohol"),
    ("spirits", "Spirits", "alcohol"),
)


class Assortment(NamedTuple):
    """The products of one category: every item x every brand ("" brand: the item alone)."""

    category_id: str
    unit: Unit
    price_range: tuple[int, int]
    items: tuple[str, ...]
    brands: tuple[str, ...] = ("",)
    excluded: bool = False  # no loyalty benefits at all (tobacco, by law)
    legal_min_price: bool = False  # alcohol: a minimum retail price applies


W, P = Unit.WEIGHT, Unit.PIECE
FARMS = ("Green Meadow", "Village House", "Northern Farm")

ASSORTMENT: tuple[Assortment, ...] = (
    Assortment(
        "milk",
        P,
        (6900, 12900),
        (
            "Milk 2.5 % 930 ml",
            "Milk 3.2 % 930 ml",
            "Milk 1.5 % 1 l",
            "Baked milk 4 % 450 ml",
            "Lactose-free milk 1.5 % 1 l",
        ),
        FARMS,
    ),
    Assortment(
        "cheese",
        W,
        (59000, 149000),
        ("Gouda 45 %", "Russian cheese 50 %", "Maasdam 45 %", "Parmesan 40 %", "Suluguni 40 %"),
        ("Alpine Valley", "Uglich Dairy"),
    ),
    Assortment(
        "yogurt",
        P,
        (4500, 9900),
        (
            "Strawberry yogurt 2.5 % 270 g",
            "Peach yogurt 2.5 % 270 g",
            "Greek yogurt 2 % 140 g",
            "Drinking yogurt cherry 290 g",
            "Cottage cheese 5 % 200 g",
        ),
        FARMS,
    ),
    Assortment(
        "kefir",
        P,
        (5900, 10900),
        ("Kefir 1 % 900 ml", "Kefir 3.2 % 900 ml", "Ryazhenka 4 % 500 ml", "Ayran 0.5 l"),
        FARMS,
    ),
    Assortment(
        "butter",
        P,
        (14900, 32900),
        ("Butter 82.5 % 180 g", "Butter 72.5 % 200 g", "Ghee 99 % 250 g"),
        FARMS,
    ),
    Assortment(
        "bread",
        P,
        (3900, 11900),
        (
            "Borodinsky rye bread 400 g",
            "White loaf 350 g",
            "Whole grain bread 300 g",
            "Baguette 250 g",
            "Toast bread 500 g",
        ),
        ("Khlebny Dom", "Baker's Corner"),
    ),
    Assortment(
        "pastry",
        P,
        (4900, 12900),
        ("Butter croissant 60 g", "Cinnamon bun 90 g", "Cheesecake pastry 80 g"),
        ("Khlebny Dom", "Baker's Corner"),
    ),
    Assortment(
        "fruit",
        W,
        (8900, 29900),
        (
            "Bananas",
            "Apples Golden",
            "Apples Gala",
            "Pears Conference",
            "Oranges",
            "Mandarins",
            "Lemons",
            "White grapes",
            "Kiwi",
            "Pomegranates",
            "Persimmon",
            "Plums",
        ),
    ),
    Assortment(
        "vegetables",
        W,
        (4900, 29900),
        (
            "Potatoes",
            "Carrots",
            "Onions",
            "Cucumbers",
            "Tomatoes",
            "Cherry tomatoes",
            "Red bell peppers",
            "White cabbage",
            "Beetroot",
            "Zucchini",
            "Broccoli",
            "Garlic",
        ),
    ),
    Assortment(
        "beef",
        W,
        (69900, 189900),
        ("Beef tenderloin", "Beef brisket", "Ground beef", "Beef ribs", "Ribeye steak"),
        ("Prairie Farm", "Bryansk Beef"),
    ),
    Assortment(
        "pork",
        W,
        (39900, 89900),
        ("Pork neck", "Pork loin", "Ground pork", "Pork ribs", "Pork ham"),
        ("Prairie Farm", "Tambov Meat"),
    ),
    Assortment(
        "poultry",
        W,
        (24900, 59900),
        (
            "Chicken breast fillet",
            "Chicken thighs",
            "Chicken wings",
            "Whole chicken",
            "Turkey fillet",
            "Chicken drumsticks",
        ),
        ("Golden Hen", "Volga Poultry"),
    ),
    Assortment(
        "sausages",
        P,
        (14900, 49900),
        (
            "Doctor's sausage 400 g",
            "Salami 300 g",
            "Frankfurters 450 g",
            "Smoked sausage 350 g",
            "Sliced ham 150 g",
        ),
        ("Ostankino Deli", "Tambov Meat"),
    ),
    Assortment(
        "fish",
        W,
        (39900, 249900),
        ("Salmon fillet", "Cod fillet", "Salted herring", "Smoked mackerel", "Trout steak"),
    ),
    Assortment(
        "cereals",
        P,
        (5900, 19900),
        (
            "Buckwheat 900 g",
            "Long grain rice 900 g",
            "Oat flakes 500 g",
            "Millet 800 g",
            "Bulgur 500 g",
            "Corn flakes 375 g",
        ),
        ("Mistral", "Uvelka"),
    ),
    Assortment(
        "pasta",
        P,
        (6900, 24900),
        ("Spaghetti 450 g", "Penne 450 g", "Fusilli 450 g", "Farfalle 400 g", "Vermicelli 400 g"),
        ("Makfa", "Barilla Classic"),
    ),
    Assortment(
        "chocolate",
        P,
        (7900, 29900),
        (
            "Milk chocolate 90 g",
            "Dark chocolate 70 % 90 g",
            "Chocolate with hazelnuts 90 g",
            "White chocolate 85 g",
            "Chocolate candies 200 g",
        ),
        ("Red October", "Alpen Gold Style", "Babaevsky"),
    ),
    Assortment(
        "snacks",
        P,
        (5900, 17900),
        (
            "Potato chips 150 g",
            "Salted peanuts 150 g",
            "Crackers 200 g",
            "Popcorn 100 g",
            "Sunflower seeds 200 g",
        ),
        ("Crispy Co", "Snack Time"),
    ),
    Assortment(
        "water",
        P,
        (3900, 12900),
        ("Still water 1.5 l", "Sparkling water 1.5 l", "Mineral water 0.5 l", "Still water 5 l"),
        ("Holy Spring", "Borjomi Style"),
    ),
    Assortment(
        "juice",
        P,
        (9900, 24900),
        (
            "Orange juice 1 l",
            "Apple juice 1 l",
            "Tomato juice 1 l",
            "Multifruit nectar 1 l",
            "Cherry nectar 1 l",
        ),
        ("Dobry Garden", "Orchard"),
    ),
    Assortment(
        "coffee",
        P,
        (24900, 99900),
        (
            "Coffee beans 1 kg",
            "Ground coffee 250 g",
            "Instant coffee 95 g",
            "Coffee capsules 10 pcs",
            "Espresso beans 500 g",
        ),
        ("Jardin Style", "Live Coffee", "Moscow Roasters"),
    ),
    Assortment(
        "tea",
        P,
        (9900, 49900),
        ("Black tea 100 bags", "Green tea 25 bags", "Earl Grey 100 g", "Herbal tea 20 bags"),
        ("Greenfield Style", "May Tea"),
    ),
    Assortment(
        "cleaning",
        P,
        (9900, 59900),
        (
            "Dishwashing liquid 500 ml",
            "Laundry gel 1.5 l",
            "Laundry powder 3 kg",
            "Glass cleaner 500 ml",
            "Bathroom cleaner 750 ml",
            "Dishwasher tablets 40 pcs",
        ),
        ("Clean Home", "Sparkle"),
    ),
    Assortment(
        "paper",
        P,
        (4900, 29900),
        ("Toilet paper 8 rolls", "Paper towels 2 rolls", "Napkins 100 pcs"),
        ("Soft Cloud", "Zewa Style"),
    ),
    Assortment(
        "tobacco",
        P,
        (17900, 27900),
        ("Cigarettes Classic 20 pcs", "Cigarettes Blue 20 pcs", "Cigarettes Menthol 20 pcs"),
        ("Tabak No. 1", "Parliament Road"),
        excluded=True,
    ),
    Assortment(
        "beer",
        P,
        (7900, 24900),
        ("Lager 0.5 l", "Wheat beer 0.5 l", "Dark beer 0.5 l", "IPA 0.45 l"),
        ("Zhiguli Style", "Volga Brewery"),
        legal_min_price=True,
    ),
    Assortment(
        "wine",
        P,
        (49900, 249900),
        (
            "Cabernet Sauvignon red dry 0.75 l",
            "Merlot red dry 0.75 l",
            "Chardonnay white dry 0.75 l",
            "Sparkling brut 0.75 l",
            "Rose semi-dry 0.75 l",
        ),
        ("Kuban Valley", "Crimean Coast"),
        legal_min_price=True,
    ),
    Assortment(
        "spirits",
        P,
        (39900, 199900),
        ("Vodka 0.5 l", "Vodka 0.7 l", "Brandy 3 years 0.5 l", "Blended whisky 0.7 l"),
        ("Northern Lights", "Old Distillery"),
        legal_min_price=True,
    ),
)
